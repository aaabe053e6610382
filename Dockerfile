# tailship's container image: one static binary on distroless, non-root.
#
#   docker build -t tailship:0.1.0 .
#   docker run --rm tailship:0.1.0 catalog
#
# The binary is linked statically against musl (docs/PERFORMANCE.md, "Build choices": it maps
# less code than the glibc build, which is most of a sidecar's resident memory), hence
# distroless/static. That image carries the CA certificates the CloudWatch sink trusts (it
# uses the system store); the Cloud Monitoring sink ships Google's roots itself.
#
# .cargo/config.toml links that build with the toolchain's rust-lld, and build.rs gives it
# link/symbol-order.txt: a scrape's functions side by side (PERFORMANCE.md, "Code layout").

FROM docker.io/library/rust:1.95-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tailship --target x86_64-unknown-linux-musl \
    && install -D -m 0755 target/x86_64-unknown-linux-musl/release/tailship /out/tailship

FROM gcr.io/distroless/static-debian12:nonroot
#checkov:skip=CKV_DOCKER_2:no HEALTHCHECK: the orchestrator probes /healthz and /readyz (deploy/k8s), and distroless has no shell or HTTP client to run one
COPY --from=build /out/tailship /tailship
# distroless's "nonroot" user; the Kubernetes manifests run it as this UID too.
USER 65532:65532
ENTRYPOINT ["/tailship"]
CMD ["run", "--config", "/etc/tailship/tailship.toml"]
