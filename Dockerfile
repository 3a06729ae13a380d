# syntax=docker/dockerfile:1
# chartyard's container image: the release binary on a distroless runtime that runs as
# the unprivileged user 65532 (nonroot). Build from the repository root:
#   docker build -t chartyard:0.1.0 .
# The image reads /etc/chartyard/config.yaml (mounted by the Helm chart in deploy/chart),
# listens on 8099 (and /metrics on 9090 if metrics.listen says so), and with the
# filesystem driver keeps its data on a volume at /data; the root filesystem can be
# read-only.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin chartyard \
    && install -D -m 0755 target/release/chartyard /out/chartyard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/chartyard /usr/local/bin/chartyard
USER 65532:65532
WORKDIR /data
EXPOSE 8099
ENTRYPOINT ["/usr/local/bin/chartyard"]
CMD ["serve", "--config", "/etc/chartyard/config.yaml"]
