# The Hookpost manager: a static binary on distroless, running as the nonroot user the Helm chart and
# config/manager expect (65532). Build: docker build --build-arg VERSION=v0.1.0 -t ghcr.io/hookpost/hookpost:v0.1.0 .

FROM golang:1.26 AS builder
ARG TARGETOS=linux
# Set by BuildKit for multi-platform builds; empty means the builder's own architecture.
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Dependencies first, so source edits do not refetch modules.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/manager/ cmd/manager/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X github.com/hookpost/hookpost/internal/version.Version=${VERSION}" \
      -o /out/manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
