# syntax=docker/dockerfile:1
#
# One image for every Switchboard service; the command picks the service:
#   node services/gateway/dist/main.js      (the default)
#   node services/dispatcher/dist/main.js
#   node services/admin/dist/main.js
#   node scripts/demo-server.mjs            (development demo page)
# All configuration comes from environment variables.

ARG NODE_IMAGE=node:24-slim

# Only the manifests, so the dependency layer is rebuilt when they change, not on every edit.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY . .
RUN find . -type f ! -name package.json ! -name package-lock.json -delete \
 && find . -type d -empty -delete

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1
COPY --from=manifests /app ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf .turbo node_modules/.cache

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the process user.
COPY --from=build /app ./
USER node
EXPOSE 3000 8080 9100 9101
CMD ["node", "services/gateway/dist/main.js"]
