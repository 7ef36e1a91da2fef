//! Super-resolution inference helpers, evaluation reports and FRAMER analysis.
