//! Compiles the protocols with `protox` (pure Rust), so no system `protoc` is needed: shoal's own
//! (`shoal.v1`) and dm_env_rpc v1 (with the `google.rpc.Status` its errors carry). The compiled
//! descriptor set is kept too, so tests can compare shoal's dm_env_rpc definition field by field
//! with the `dm-env-rpc` package's.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../proto";
    let protos = [
        "../proto/shoal/v1/shoal.proto",
        "../proto/dm_env_rpc/v1/dm_env_rpc.proto",
        "../proto/google/rpc/status.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, [proto_root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
