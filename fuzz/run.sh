#!/usr/bin/env bash
# Fuzzes the detector and every parser for SECONDS per format (default 60), seeded from the
# shared corpus; not part of CI. Findings land in fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
corpus=${DOCCHAT_SHARED:-../shared}/corpus
cargo build --release -q -p docchat-core --example fuzz
fuzz() { echo "== $1"; shift; ./target/release/examples/fuzz "$seconds" "$@"; }
fuzz pdf "$corpus"/pdf/pypdf__crazyones.pdf "$corpus"/pdf/samplefiles__010-pdflatex-forms.pdf "$corpus"/pdf/pdfjs__helloworld-bad.pdf "$corpus"/pdf/pypdf__jpeg.pdf
fuzz docx "$corpus"/office/tika__testWORD_various.docx "$corpus"/office/pandoc__docx_notes.docx
fuzz pptx "$corpus"/office/tika__testPPT.pptx "$corpus"/office/pythonpptx__sld-notes.pptx
fuzz sheets "$corpus"/office/tika__test-columnar.xlsx "$corpus"/office/tika__testEXCEL.xls fuzz/seeds/sample.ods "$corpus"/office/pythonpptx__cht-charts.pptx
FUZZ_PASSWORD=tika fuzz encrypted-office "$corpus"/office/tika__testWORD_protected_passtika.docx "$corpus"/office/tika__testEXCEL_protected_passtika.xlsx
FUZZ_PASSWORD=openpassword fuzz encrypted-pdf "$corpus"/pdf/samplefiles__005-libreoffice-writer-password.pdf
fuzz odf-epub "$corpus"/office/tika__testODFwithOOo3.odt "$corpus"/office/tika__testEPUB.epub
fuzz rtf "$corpus"/office/tika__testRTF.rtf "$corpus"/office/tika__testRTF-ms932.rtf
fuzz html-text "$corpus"/office/tika__testHTML.html "$corpus"/office/tika__testMARKDOWN.md "$corpus"/office/tika__testHTMLNoisyMetaEncoding_1.html
fuzz image "$corpus"/ocr/tess__HelloGoogle.tif "$corpus"/images/skimage__text.png
