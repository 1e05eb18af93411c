# expect: none
# Passes: pinned tags (also through a global ARG), a digest, a later stage
# built FROM an earlier one that sets a non-root USER, apt with both
# habits (also with a cache mount instead of removing the lists).
ARG GO_IMAGE=golang:1.26.8-bookworm
FROM ${GO_IMAGE} AS build
WORKDIR /src
RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM debian:bookworm-20260824-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171 AS base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -qy --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    apt-get update && apt-get install --yes -o APT::Install-Recommends=false iproute2
RUN useradd --uid 10001 app
USER 10001:10001

FROM base
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
