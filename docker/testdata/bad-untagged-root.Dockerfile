# expect: PinnedBaseImage FinalStageNonRoot AptNoInstallRecommends AptListsCleaned
# The brief's example of a bad Dockerfile that still builds: an untagged base
# image (which means debian:latest), no USER (so the container runs as root),
# and an apt-get install that pulls recommended packages and leaves the
# package lists in the layer.
FROM debian
RUN apt-get update && apt-get install -y curl
COPY app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
