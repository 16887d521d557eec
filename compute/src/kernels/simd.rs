//! The elementwise loops' instruction set: [`vectorized`] runs a closure compiled for the
//! widest vectors this processor has (AVX-512 or AVX2 with FMA, else SSE2), chosen at run time
//! by pulp (the SIMD dispatch the `gemm` crate is built on), so the plain loops inside
//! auto-vectorise for it without any `unsafe` here or a build for one machine. The closure and
//! every function it calls must be `#[inline(always)]`: code the compiler does not inline into
//! the dispatched function is compiled for the baseline (SSE2) instead.

/// Runs `f` with the processor's widest vector instructions enabled for the code it inlines.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}
