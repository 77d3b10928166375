# The three binaries (volley, volley-exporter, volley-testbed) in one image;
# docker-compose.yml runs every Volley service from it.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/volley target/release/volley-exporter target/release/volley-testbed /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
COPY deploy/stack.yaml /scenarios/stack.yaml
USER nobody
ENTRYPOINT []
CMD ["volley", "--help"]
