//! Attribute macros for Bananas (work in progress).
