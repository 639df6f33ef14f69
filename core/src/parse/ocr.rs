//! Tesseract OCR (via leptess).
