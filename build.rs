//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed) and generates the
//! prost messages and tonic services. The encoded descriptor set is kept in OUT_DIR for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/wgtwo/common/v0/phonenumber.proto",
        "proto/wgtwo/webterminal/v0/webterminal.proto",
        "proto/webterminal/core/v1/simulated_phone_network.proto",
        "proto/webterminal/core/v1/operator.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
