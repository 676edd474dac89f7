# Builds the one scorekeeper binary; docker-compose.yml builds this image once
# (as scorekeeper:local) and runs it as migrate, mockapi, worker and web. The
# build context is filtered by .dockerignore.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/scorekeeper ./cmd/scorekeeper

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/scorekeeper /usr/local/bin/scorekeeper
USER nonroot:nonroot
# web (HTTP_ADDR), mockapi (MOCKAPI_ADDR), worker metrics (METRICS_ADDR)
EXPOSE 3000 4000 9464
ENTRYPOINT ["/usr/local/bin/scorekeeper"]
