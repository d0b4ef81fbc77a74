//! Shared helpers for the Bananas behaviour suites.
