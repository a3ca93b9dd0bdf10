# PanList container image: the static binary (scripts/build-binary) on debian:bookworm-slim.
#
#   docker build -t panlist .
#   docker run -d --name panlist -p 127.0.0.1:5244:5244 -v panlist-data:/data panlist
#   docker logs panlist | grep 'initial password'
#
# Not built in this project's CI (there is no Docker engine there); see docs/INSTALL.md.

# ---- build: the Swift 6.3 image on the same Debian release as the runtime image, so that the
# binary needs no newer glibc than the runtime has.
FROM swift:6.3-bookworm AS build
# libxml2-dev and libicu-dev hold the static libxml2.a, libicuuc.a and libicudata.a that
# scripts/build-binary links in, libarchive-dev and the -dev packages after it libarchive.a and the
# compression libraries it needs; binutils gives strip.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libxml2-dev libicu-dev liblzma-dev zlib1g-dev binutils \
       libarchive-dev nettle-dev libacl1-dev libzstd-dev liblz4-dev libbz2-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/build-binary | tee /tmp/build-binary.log \
    && install -m 0755 "$(sed -n 's/^binary: //p' /tmp/build-binary.log)" /panlist

# ---- run
FROM debian:bookworm-slim
# ca-certificates: the 123 Open driver talks HTTPS to 123's API. tzdata: local times in logs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin panlist \
    && mkdir -p /data && chown panlist:panlist /data && chmod 0700 /data
COPY --from=build /panlist /usr/local/bin/panlist
USER panlist
# The server listens on 127.0.0.1 by default; inside a container it must listen on all addresses
# for the published port to reach it. (Publish it on 127.0.0.1 of the host, as above, unless a
# reverse proxy on another host needs it.)
ENV PANLIST_ADDRESS=0.0.0.0
VOLUME /data
EXPOSE 5244
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/panlist"]
CMD ["server", "--data", "/data"]
