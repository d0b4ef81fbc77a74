//! `#[bananas::periodic]`: a task with a schedule. Everything but the extra
//! arguments and the no-parameters rule is shared with `#[bananas::task]`.

use proc_macro2::TokenStream;

use crate::{args::Kind, task};

/// The entry point of `#[bananas::periodic]`.
pub(crate) fn periodic(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand_attr(Kind::Periodic, attr, item, |f| {
        // A scheduled call has no caller to supply arguments: the function
        // takes none (a `Context` first parameter is allowed).
        let mut errors = None;
        for p in &f.params {
            crate::args::push_err(
                &mut errors,
                syn::Error::new_spanned(
                    &p.ident,
                    format!(
                        "a periodic task takes no arguments (only an optional `bananas::Context` \
                         first): remove `{}`, or make it a #[bananas::task] and submit it from \
                         a periodic one",
                        p.ident
                    ),
                ),
            );
        }
        errors.map_or(Ok(()), Err)
    })
}
