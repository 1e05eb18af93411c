# expect: AptNoInstallRecommends AptAssumeYes AptListsCleaned
# apt rules across RUN forms: exec form, heredoc, a second command in the same
# RUN, env-prefixed calls and apt instead of apt-get.
FROM debian:bookworm-20260824-slim
RUN ["/bin/sh", "-c", "apt-get update && apt-get install -y --no-install-recommends curl"]
RUN <<EOT
apt-get update
DEBIAN_FRONTEND=noninteractive apt install -y wget
rm -rf /var/lib/apt/lists/*
EOT
RUN apt-get update && apt-get -q install --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
USER 65534
