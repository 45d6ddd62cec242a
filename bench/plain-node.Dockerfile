# For comparison only: what a plain Node image with `npm install` weighs. The context holds the
# project as `npm ci --omit=dev` leaves it (every platform's onnxruntime binaries included).
ARG NODE_IMAGE=node:26-bookworm-slim
FROM ${NODE_IMAGE}
WORKDIR /app
COPY . .
ENV NODE_ENV=production
CMD ["node", "--import", "tsx", "cli/commands/serve.ts", "functions/iris"]
