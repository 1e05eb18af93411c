# expect: PinnedBaseImage FromAsCasing StageNameCasing MaintainerDeprecated LegacyKeyValueFormat WorkdirRelativePath UndefinedVar JSONArgsRecommended FinalStageNonRoot
# BuildKit's own checks (what `docker build --check` reports), plus moving
# tags (latest, a release name without a version) and an explicit USER root.
FROM golang:latest as Build
MAINTAINER someone@example.com
ENV GOFLAGS -mod=mod
WORKDIR src
COPY ${UNDEFINED_DIR} /src/
RUN go build -o /out/app .

FROM debian:bookworm-slim
COPY --from=Build /out/app /app
USER root
CMD /app --serve
