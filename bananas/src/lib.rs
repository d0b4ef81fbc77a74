//! Bananas (work in progress).
