# tailship's container image: a static-enough Rust binary on distroless, non-root.
#
#   docker build -t tailship:0.1.0 .
#   docker run --rm tailship:0.1.0 catalog
#
# The binary links glibc dynamically, hence distroless/cc (glibc, libgcc) rather than
# distroless/static. The image carries the CA certificates the CloudWatch sink trusts (it
# uses the system store); the Cloud Monitoring sink ships Google's roots itself.

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tailship \
    && install -D -m 0755 target/release/tailship /out/tailship

FROM gcr.io/distroless/cc-debian12:nonroot
#checkov:skip=CKV_DOCKER_2:no HEALTHCHECK: the orchestrator probes /healthz and /readyz (deploy/k8s), and distroless has no shell or HTTP client to run one
COPY --from=build /out/tailship /tailship
# distroless's "nonroot" user; the Kubernetes manifests run it as this UID too.
USER 65532:65532
ENTRYPOINT ["/tailship"]
CMD ["run", "--config", "/etc/tailship/tailship.toml"]
