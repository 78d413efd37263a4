# syntax=docker/dockerfile:1
#
# One image for both services (`mw` is the only binary):
#   docker run myloware                          -> mw serve api          (port 8080)
#   docker run myloware serve orchestrator       -> mw serve orchestrator (port 8090)
#
# Configuration comes from the environment (crates/core/src/config/). The
# image defaults to ENVIRONMENT=production, which refuses to start without
# API_KEY and HITL_SECRET (>= 32 characters, not the dev defaults); compose
# overrides ENVIRONMENT=development for local use.
#
# No HEALTHCHECK here: the runtime image has no curl, and Fly ignores Docker
# HEALTHCHECKs anyway. Health is checked by docker-compose.yml and fly.toml
# (GET /health on each service).

############################
# Build stage
############################
FROM rust:1-bookworm AS builder
WORKDIR /src

# Workspace manifests, sources, the SQL migrations (`sqlx::migrate!` in
# crates/db embeds migrations/{sqlite,postgres} at compile time) and the
# projects (crates/core/build.rs embeds projects/*.toml and
# projects/personas/*.md: the image needs no projects folder).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
COPY projects ./projects

# Cache mounts keep the registry and compiled dependencies between builds
# (BuildKit; Fly's builders support them). `migrate!` is not re-run by cargo
# when only a .sql file changes, so crates/db is touched to force it to
# recompile against the migrations just copied (the cached target/ would
# otherwise embed stale migrations). The binary is copied out of the cache
# mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    touch crates/db/src/lib.rs \
 && cargo build --release --locked -p myloware-cli --bin mw \
 && install -D -m 0755 target/release/mw /app/mw

############################
# Runtime stage
############################
FROM debian:bookworm-slim AS runtime

# CA roots for outbound HTTPS (providers, LLM, LangSmith, managed Postgres).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Non-root user; /app/data is the only writable path (SQLite's default
# DATABASE_URL, sqlite://data/myloware.db, resolves to /app/data/myloware.db;
# the default ASSET_DIR, data/assets, to /app/data/assets: made here, so a
# volume mounted on it starts owned by the service's user).
RUN groupadd --system --gid 10001 mw \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin mw

WORKDIR /app
COPY --from=builder /app/mw /usr/local/bin/mw
RUN mkdir -p /app/data/assets && chown -R 10001:10001 /app/data

# The services listen on loopback unless BIND_HOST says otherwise: a
# container must listen on its network interface. Production also requires
# DATABASE_URL=postgres://... and an https PUBLIC_BASE_URL (set at run time).
ENV ENVIRONMENT=production \
    LOG_FORMAT=json \
    BIND_HOST=0.0.0.0

USER 10001:10001
EXPOSE 8080 8090

# `mw` handles SIGTERM itself (finishes in-flight requests), so it can run as PID 1.
ENTRYPOINT ["mw"]
CMD ["serve", "api"]
