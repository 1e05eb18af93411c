# check=skip=AptListsCleaned
# expect: none
# Passes: root with a documented reason, and a project rule turned off with
# BuildKit's own check directive.
FROM busybox:1.37.0 AS tools

FROM debian:bookworm-20260824-slim
# lint:root-required writes root-owned host directories
RUN apt-get update && apt-get install -y --no-install-recommends kmod
COPY --from=tools /bin/busybox /bin/busybox
USER root
