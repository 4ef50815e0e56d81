# syntax=docker/dockerfile:1
# tokencache image: a release build in the official Rust image, run from debian-slim
# as a non-root user. Built by docker-compose.yml (`docker compose build`), or alone:
#   docker build -t tokencache .
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations ./migrations
COPY src ./src
# The registry and target/ live in cache mounts: a rebuild after a source change
# recompiles tokencache, not its dependencies. The binary is copied out of the mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin tokencache \
    && install -D -m 0755 target/release/tokencache /out/tokencache

# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# A fixed numeric uid, so that orchestrators can check runAsNonRoot.
RUN groupadd --system --gid 10001 tokencache \
    && useradd --system --uid 10001 --gid tokencache --home-dir /var/lib/tokencache \
       --create-home --shell /usr/sbin/nologin tokencache
COPY --from=builder /out/tokencache /usr/local/bin/tokencache
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/tokencache-healthcheck

USER 10001:10001
# The working directory is writable: the embedded SQLite default (no DATABASE_URL)
# keeps its file here.
WORKDIR /var/lib/tokencache
ENV TOKENCACHE_LISTEN=0.0.0.0:9094 \
    TOKENCACHE_LOG_FORMAT=json
EXPOSE 9094
# /healthz answers 200 while the process serves; readiness (stores reachable) is
# /readyz, for a load balancer, not a reason to restart the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["tokencache-healthcheck"]
# `serve` applies pending migrations at start (TOKENCACHE_NO_MIGRATE=true to skip).
ENTRYPOINT ["tokencache"]
CMD ["serve"]
