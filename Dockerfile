# leadflow container image: one image holds all five programs (intake, router, scheduler,
# analytics and the one-shot migrate tool); docker-compose.yml picks the program per service
# with `command:`. Two stages, both Debian bookworm so that the shared libraries the binaries
# were linked against are exactly the ones installed at run time.
#
#   docker build -t leadflow:latest .
#   docker run --rm leadflow:latest leadflow-intake   # the default command
#
# Works with BuildKit and with the legacy builder (no heredocs, no --mount).

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
# Build stage: compilers and -dev packages, never shipped.
FROM ${DEBIAN_IMAGE} AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libzmq3-dev libpq-dev libjansson-dev libhiredis-dev libmicrohttpd-dev \
        libcurl4-openssl-dev libunistring-dev libcsv-dev libssl-dev libsodium-dev uuid-dev \
        libphonenumber-dev libicu-dev libzip-dev libexpat1-dev zlib1g-dev libjsmn-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore is an allow-list: only the Makefile and the source, config and migration
# folders reach this COPY, so editing docs or tests does not invalidate the build cache and
# a local .env or build/ directory never leaks into the image.
COPY . .

# `bins` builds the four services and the tools (leadflow-migrate) only: the unit tests need
# Criterion, which the image does not carry. Extra make variables (e.g. WERROR=1) can be
# passed with --build-arg MAKE_ARGS=...
ARG MAKE_ARGS=""
RUN make -j"$(nproc)" ${MAKE_ARGS} bins \
 && for b in intake router scheduler analytics migrate; do \
        test -x "build/bin/leadflow-$b" || { echo "missing build/bin/leadflow-$b" >&2; exit 1; }; \
    done \
 && mkdir -p /out/bin \
 && install -m 0755 -s build/bin/leadflow-* /out/bin/

# ---------------------------------------------------------------------------------------------
# Runtime stage: shared libraries, curl (intake healthcheck), tini (PID 1), nothing else.
# libphonenumber and protobuf-lite are linked statically (less resident memory, see
# docs/benchmarks.md); what they need at run time is abseil and ICU.
FROM ${DEBIAN_IMAGE} AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libzmq5 libpq5 libjansson4 libhiredis0.14 libmicrohttpd12 libcurl4 libunistring2 \
        libcsv3 libssl3 libsodium23 libuuid1 libabsl20220623 libicu72 libzip4 libexpat1 \
        ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid so that volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 leadflow \
 && useradd --system --uid 10001 --gid leadflow --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin leadflow

COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /src/config/ /etc/leadflow/
COPY --from=build /src/db/migrations/ /usr/share/leadflow/migrations/
COPY --from=build /src/db/functions/ /usr/share/leadflow/functions/

# Fail the image build, not the first start in production, if a runtime library is missing.
RUN set -e; for b in /usr/local/bin/leadflow-*; do \
        if ldd "$b" | grep -q 'not found'; then ldd "$b" >&2; exit 1; fi; \
    done

# One healthcheck for every service of the image. The non-HTTP services refresh the file
# named by LEADFLOW_HEALTH_FILE on each loop turn while PostgreSQL answers, so a stale or
# missing file means "stuck or cut off"; intake (no LEADFLOW_HEALTH_FILE) is asked over HTTP.
RUN printf '%s\n' \
        '#!/bin/sh' \
        '# leadflow container healthcheck: exit 0 when the service in this container is healthy.' \
        'if [ -n "${LEADFLOW_HEALTH_FILE:-}" ]; then' \
        '    [ -f "$LEADFLOW_HEALTH_FILE" ] || exit 1' \
        '    age=$(( $(date +%s) - $(stat -c %Y "$LEADFLOW_HEALTH_FILE") ))' \
        '    [ "$age" -lt "${LEADFLOW_HEALTH_MAX_AGE:-15}" ]' \
        '    exit $?' \
        'fi' \
        'exec curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:${LEADFLOW_INTAKE_PORT:-8080}/healthz"' \
        > /usr/local/bin/leadflow-healthcheck \
 && chmod 0755 /usr/local/bin/leadflow-healthcheck

ENV LEADFLOW_CONFIG_DIR=/etc/leadflow \
    LEADFLOW_MIGRATIONS_DIR=/usr/share/leadflow/migrations \
    LEADFLOW_LOG_LEVEL=info \
    LEADFLOW_INTAKE_PORT=8080

USER leadflow:leadflow
WORKDIR /tmp
EXPOSE 8080 7101 7102 7103

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/leadflow-healthcheck"]

# tini forwards SIGTERM to the service and reaps children; the services shut down in order
# on SIGTERM (see docs/configuration.md), within compose's stop_grace_period.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["leadflow-intake"]
