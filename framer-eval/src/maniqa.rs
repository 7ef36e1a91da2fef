//! MANIQA (multi-dimension attention network for no-reference image quality assessment).
