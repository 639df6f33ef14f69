# docchat on the official PostgreSQL 16 image with pgvector. The same steps as scripts/setup.sh
# and scripts/install.sh: cargo-pgrx 0.18.1, a release build, the models of scripts/models.sh (fp32
# MiniLM and mpnet exports, the int8 MiniLM quantized from the first) and ONNX Runtime 1.31.1.
#   docker build -t docchat . && docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 docchat
FROM pgvector/pgvector:0.8.0-pg16 AS builder
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential curl ca-certificates pkg-config libclang-dev clang postgresql-server-dev-16 \
        python3-pip libtesseract-dev libleptonica-dev \
    && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
RUN cargo install cargo-pgrx --version 0.18.1 --locked \
    && cargo pgrx init --pg16 /usr/lib/postgresql/16/bin/pg_config
RUN pip3 install --break-system-packages --no-deps --target /models \
        onnxruntime==1.31.1
WORKDIR /src
COPY . .
RUN cargo pgrx package --pg-config /usr/lib/postgresql/16/bin/pg_config
RUN PIP_BREAK_SYSTEM_PACKAGES=1 DOCCHAT_CACHE=/cache bash scripts/models.sh

FROM pgvector/pgvector:0.8.0-pg16
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd poppler-utils \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/docchat-pg16/usr/ /usr/
COPY --from=builder /cache/models/ /usr/share/postgresql/16/docchat/models/
COPY --from=builder /models/onnxruntime/capi/libonnxruntime.so.1.31.1 /usr/lib/postgresql/16/lib/docchat/
RUN echo "shared_preload_libraries = 'docchat'" >> /usr/share/postgresql/postgresql.conf.sample \
    && echo "CREATE EXTENSION IF NOT EXISTS docchat CASCADE;" > /docker-entrypoint-initdb.d/10-docchat.sql
