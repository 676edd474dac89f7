# Builds the one scorekeeper binary; docker-compose.yml runs it as web,
# worker and mockapi.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/scorekeeper ./cmd/scorekeeper

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/scorekeeper /usr/local/bin/scorekeeper
ENTRYPOINT ["/usr/local/bin/scorekeeper"]
