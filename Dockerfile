# Sextant's container image: `make image`, or
#   docker build --build-arg VERSION=$(git describe --tags --always) -t sextant .
#
# The binary is static (CGO_ENABLED=0: Go's own DNS resolver, which the dns
# membership plugin uses, and no libc), so the final image is distroless
# "static": no shell, no package manager, user nonroot (65532). The built-in
# plugins run from the same binary (`sextant plugin NAME`), as child
# processes talking over Unix sockets in /tmp.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# The modules first, so that a change of the sources reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sextant ./cmd/sextant \
    && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sextant /usr/local/bin/sextant
# data_dir: the Raft log and snapshots. Mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
USER 65532:65532
WORKDIR /data
# 8848 HTTP (Open API, console, health, /metrics), 9848 client gRPC (port +
# 1000), 9849 cluster transport between members (port + 1001).
EXPOSE 8848 9848 9849
ENTRYPOINT ["/usr/local/bin/sextant"]
CMD ["server", "--data-dir", "/data"]
