# expect: FinalStageNonRoot PinnedBaseImage
# A root-required annotation must say why; and a build stage's base image
# must be pinned too, not only the final one's.
FROM golang AS build
RUN true

FROM debian:bookworm-20260824-slim
# lint:root-required
COPY --from=build /etc/hostname /x
