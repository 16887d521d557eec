//! The host kernels: every layer the host engine computes, forward and backward, as plain
//! functions on row-major `f32` slices of the flat parameter vector (llm.c's shape: small
//! kernels, one flat layout), each tested against a definition or a reference we did not
//! write. Matrix products go through one GEMM front ([`gemm`]); the elementwise loops run with
//! the processor's widest vectors ([`simd`]). Decoder-only language models add layers here
//! (GELU, RoPE, RMSNorm, SwiGLU, a key/value cache), not a new engine.

pub mod activation;
pub mod attention;
pub mod clip;
pub mod conv;
pub mod embedding;
pub mod gemm;
pub mod lanes;
pub mod linear;
pub mod norm;
pub mod simd;
