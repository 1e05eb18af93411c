# expect: AptNoInstallRecommends AptListsCleaned
# apt rules across RUN forms: exec form, heredoc, env-prefixed calls and apt
# instead of apt-get.
FROM debian:bookworm-20260824-slim
RUN ["/bin/sh", "-c", "apt-get update && apt-get install -y --no-install-recommends curl"]
RUN <<EOT
apt-get update
DEBIAN_FRONTEND=noninteractive apt install -y wget
rm -rf /var/lib/apt/lists/*
EOT
USER 65534
