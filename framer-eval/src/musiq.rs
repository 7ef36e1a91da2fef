//! MUSIQ (multi-scale image quality transformer).
