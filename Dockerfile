# lookout container image. Built on Debian 12 so that OpenCV is 4.6, the
# version gocv v0.31.0 binds to.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      libopencv-dev pkg-config python3-pip unzip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The ONNX Runtime library comes from the pinned PyPI wheel, checksum checked.
RUN scripts/ort.sh && go build -o /out/lookout ./cmd/lookout

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libopencv-videoio406 libopencv-imgproc406 libopencv-imgcodecs406 libopencv-core406 \
      libopencv-dnn406 libopencv-objdetect406 libopencv-calib3d406 libopencv-features2d406 \
      libopencv-flann406 libopencv-highgui406 libopencv-photo406 libopencv-video406 \
      libopencv-stitching406 libopencv-ml406 libopencv-shape406 libopencv-contrib406 \
      ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lookout /usr/local/bin/lookout
COPY --from=build /src/.state/ort/libonnxruntime.so /usr/local/lib/libonnxruntime.so
COPY models/demo /opt/lookout/models/demo
COPY configs /opt/lookout/configs
ENV LOOKOUT_ORT_LIB=/usr/local/lib/libonnxruntime.so
WORKDIR /opt/lookout
USER 65534:65534
EXPOSE 9464
ENTRYPOINT ["lookout"]
CMD ["run", "--config", "/opt/lookout/configs/compose.yaml"]
