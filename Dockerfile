# syntax=docker/dockerfile:1
# dbt-secoda as a container: `watch` by default, beside dbt (a Kubernetes native sidecar, a
# docker compose service), sharing dbt's target folder at /dbt/target. See docs/kubernetes.md
# and docs/docker-compose.md.
#
# The binary is glibc linked statically (scripts/build-static, the command CI runs too), so
# the final image is distroless/static: the binary, CA certificates, a nonroot user; no shell.

ARG RUST_VERSION=1.95.0

# Dependencies first, in their own cached layer (cargo-chef): a change to src/ rebuilds only
# dbt-secoda itself.
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install --locked cargo-chef --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# The dependencies as scripts/build-static builds them: the release profile, no extra flags
# (+crt-static goes to the final link only).
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cp "$(scripts/build-static)" /dbt-secoda \
    && mkdir -p /rootfs/state /rootfs/dbt

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /dbt-secoda /usr/local/bin/dbt-secoda
# Writable by the nonroot user even with a read-only root file system's volumes unmounted:
# the state file (the last pair processed, across restarts) and dbt's folder.
COPY --from=builder --chown=65532:65532 /rootfs/ /
USER 65532:65532
WORKDIR /dbt
ENV DBT_SECODA_STATE_FILE=/state/dbt-secoda-state.json \
    DBT_SECODA_HEALTH_LISTEN=0.0.0.0:9090
EXPOSE 9090
# No shell in the image: the probe is dbt-secoda itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["/usr/local/bin/dbt-secoda", "health", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/dbt-secoda"]
CMD ["watch"]
