# Kefu in a container: one binary, the built site beside it, SQLite in the /data volume.
#   docker build -t kefu .
#   docker run -p 8848:8848 -v kefu-data:/data kefu
# The first start prints the admin's password: `docker logs <container>`.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Tools first, so they stay cached while the sources change.
COPY Cargo.toml Cargo.lock package.json package-lock.json ./
COPY scripts scripts
RUN ./scripts/bootstrap.sh
COPY . .
RUN cargo leptos build --release --split

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data kefu \
 && mkdir -p /data && chown kefu /data
WORKDIR /app
# hash.txt beside the binary tells it the hashed asset names.
COPY --from=build /src/target/release/kefu /src/target/release/hash.txt /app/
COPY --from=build /src/target/site /app/site
ENV LEPTOS_SITE_ROOT=/app/site \
    KEFU__SERVER__LISTEN=0.0.0.0:8848 \
    KEFU__STORAGE__URL=sqlite:///data/kefu.db
USER kefu
VOLUME /data
EXPOSE 8848
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/kefu"]
CMD ["serve"]
