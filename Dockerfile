# syntax=docker/dockerfile:1
# sroll: one static binary (rustls, no OpenSSL) on a distroless, non-root base.
#   docker build -t ghcr.io/sroll-io/sroll:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sroll --target x86_64-unknown-linux-musl \
    && cp target/x86_64-unknown-linux-musl/release/sroll /sroll

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /sroll /usr/local/bin/sroll
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sroll"]
CMD ["operator"]
