//! The OpenAPI 3 document of the API (`docs/openapi.json`), served at
//! `GET /openapi.json`.

/// The OpenAPI document, as JSON.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");
