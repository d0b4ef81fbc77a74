//! The Redis broker for Bananas (work in progress).
