//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed) and generates the
//! prost messages and tonic services. The encoded descriptor set is kept in OUT_DIR for gRPC reflection.
//! pbjson-build adds serde implementations following protobuf's canonical JSON mapping to the
//! public `wgtwo.*` messages, for the browsers' WebSocket gateway (PROTOCOL.md section 11).

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
    let encoded = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out_dir.join("descriptors.bin"), &encoded)?;
    // Unknown JSON fields are ignored, as grpc-gateway's default unmarshaler (DiscardUnknown) does.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .ignore_unknown_fields()
        .build(&[".wgtwo"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
