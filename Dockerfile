# syntax=docker/dockerfile:1
# The drawbridge image: the controller and the agent (`drawbridge controller`, `drawbridge agent`).
# Build: docker build -t drawbridge:dev .

# --- build: compile TypeScript with the dev dependencies --------------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsconfig.build.json also names bench/ and test/ helpers; they are not copied, so only src/ builds.
RUN npx tsc -p tsconfig.build.json && chmod +x dist/src/cli/*.js

# --- runtime dependencies only ---------------------------------------------------------------
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------
FROM node:24-bookworm-slim
ENV NODE_ENV=production
# jemalloc instead of glibc's malloc (README, Performance): every TLS connection holds a 64 KB read
# buffer in Node, and once connections come and go glibc reuses those buffers' untouched pages for
# small objects, so an idle agent's RSS grows toward 64 KB per connection; jemalloc keeps large
# buffers apart and returns freed pages. Preloaded (below) for every process of the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && ln -s "$(find /usr/lib -name libjemalloc.so.2 | head -1)" /usr/local/lib/libjemalloc.so.2
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY package.json ./
RUN ln -s /app/dist/src/cli/drawbridge.js /usr/local/bin/drawbridge \
 && groupadd --gid 65532 drawbridge \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin drawbridge
# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
ENTRYPOINT ["drawbridge"]
CMD ["--help"]
