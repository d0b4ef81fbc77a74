//! `#[bananas::task]`: check the function, then generate the task type next
//! to it. `#[bananas::periodic]` reuses all of this and adds a schedule.

use bananas_core::rules::{Missed, Priority};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::{
    ext::IdentExt, spanned::Spanned, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments,
    ReturnType, Type,
};

use crate::args::{push_err, Args, Kind, Options};

/// The entry point of `#[bananas::task]`.
pub(crate) fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_attr(Kind::Task, attr, item, |_| Ok(()))
}

/// One parameter that becomes a submitted argument.
pub(crate) struct Param {
    /// The binding, as written (maybe `r#type`).
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// What the macro needs to know about the function.
pub(crate) struct TaskFn {
    pub(crate) item: ItemFn,
    /// Whether the first parameter is a `Context`.
    pub(crate) takes_context: bool,
    /// The parameters after the context, if any.
    pub(crate) params: Vec<Param>,
    /// `Some(T)` when the return type is a `Result<T, _>`; the success type
    /// otherwise is the return type (or `()`).
    pub(crate) ok_type: Option<Type>,
    /// Whether the return type is a `Result`.
    pub(crate) returns_result: bool,
}

/// Parses the attribute and the function, runs `extra` (the periodic checks),
/// and either expands or returns the function unchanged next to every error.
pub(crate) fn expand_attr(
    kind: Kind,
    attr: TokenStream,
    item: TokenStream,
    extra: impl FnOnce(&TaskFn) -> Result<(), syn::Error>,
) -> TokenStream {
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let msg = match kind {
                Kind::Task => "#[bananas::task] goes on an `async fn`",
                Kind::Periodic => "#[bananas::periodic] goes on an `async fn`",
            };
            let e = syn::Error::new(Span::call_site(), msg).to_compile_error();
            return quote!(#e #item);
        }
    };
    let mut errors = None;
    let options = match syn::parse2::<Args>(attr) {
        Ok(args) => args.validate(kind),
        Err(e) => Err(e),
    };
    let options = options.map_err(|e| push_err(&mut errors, e)).ok();
    let task_fn = analyze(item_fn.clone())
        .map_err(|e| push_err(&mut errors, e))
        .ok();
    if let Some(f) = &task_fn {
        if let Err(e) = extra(f) {
            push_err(&mut errors, e);
        }
    }
    match (errors, options, task_fn) {
        (None, Some(options), Some(f)) => expand(&options, &f),
        (errors, _, _) => {
            let errors = errors.map(|e| e.to_compile_error());
            quote!(#item_fn #errors)
        }
    }
}

/// Checks the function's shape, collecting every problem.
pub(crate) fn analyze(item: ItemFn) -> Result<TaskFn, syn::Error> {
    let mut errors = None;
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        push_err(
            &mut errors,
            syn::Error::new_spanned(
                sig,
                "a task must be an `async fn`: write `async fn` (the worker awaits it)",
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        push_err(
            &mut errors,
            syn::Error::new_spanned(
                &sig.generics,
                "a task cannot be generic: its argument and result types must be known to \
                 decode a job",
            ),
        );
    }
    if let Some(v) = &sig.variadic {
        push_err(
            &mut errors,
            syn::Error::new_spanned(v, "a task cannot be variadic"),
        );
    }
    let mut takes_context = false;
    let mut params = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        let pt = match input {
            FnArg::Receiver(r) => {
                push_err(
                    &mut errors,
                    syn::Error::new_spanned(
                        r,
                        "a task cannot take `self`: write it as a free function",
                    ),
                );
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        if i == 0 && last_segment_is(&pt.ty, "Context") {
            takes_context = true;
            continue;
        }
        if let Type::Reference(r) = &*pt.ty {
            // Caught here: the serde check cannot see it (a borrowed type
            // fails only in the borrow checker, with errors about lifetimes).
            push_err(
                &mut errors,
                syn::Error::new_spanned(
                    r,
                    "a task parameter cannot be a reference: arguments are decoded from the \
                     job's JSON into values the task owns; take an owned type (`String` for \
                     `&str`, `Vec<T>` for `&[T]`)",
                ),
            );
            continue;
        }
        match &*pt.pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => params.push(Param {
                ident: pi.ident.clone(),
                ty: (*pt.ty).clone(),
            }),
            other => push_err(
                &mut errors,
                syn::Error::new_spanned(
                    other,
                    "task parameters must be plain names (`width: u32`): the name is the \
                     argument's key in the job's JSON",
                ),
            ),
        }
    }
    let (ok_type, returns_result) = match &sig.output {
        ReturnType::Default => (None, false),
        ReturnType::Type(_, ty) if last_segment_is(ty, "Result") => match first_type_arg(ty) {
            Some(t) => (Some(t.clone()), true),
            None => {
                push_err(
                    &mut errors,
                    syn::Error::new_spanned(
                        ty,
                        "write the success type of this `Result` (`Result<T, E>`), so the \
                         task's result type is known",
                    ),
                );
                (None, true)
            }
        },
        ReturnType::Type(_, ty) => (Some((**ty).clone()), false),
    };
    if let Some(Type::Reference(r)) = &ok_type {
        push_err(
            &mut errors,
            syn::Error::new_spanned(
                r,
                "a task cannot return a reference: its result is stored as JSON and read \
                 back as an owned value; return an owned type (`String` for `&str`)",
            ),
        );
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(TaskFn {
            item,
            takes_context,
            params,
            ok_type,
            returns_result,
        }),
    }
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(tp) if tp.qself.is_none() => {
            tp.path.segments.last().is_some_and(|s| s.ident == name)
        }
        Type::Paren(p) => last_segment_is(&p.elem, name),
        Type::Group(g) => last_segment_is(&g.elem, name),
        _ => false,
    }
}

fn first_type_arg(ty: &Type) -> Option<&Type> {
    let Type::Path(tp) = ty else { return None };
    let PathArguments::AngleBracketed(args) = &tp.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Generates everything next to the (unchanged) function.
pub(crate) fn expand(o: &Options, f: &TaskFn) -> TokenStream {
    let k = &o.krate;
    let p = quote!(#k::__private);
    let item = &f.item;
    let vis = &item.vis;
    let fn_name = &item.sig.ident;
    let wire_name = o
        .name
        .clone()
        .unwrap_or_else(|| fn_name.unraw().to_string());
    let fn_name_str = fn_name.unraw().to_string();
    // `#[cfg]` on the function applies to everything generated for it.
    let cfgs: Vec<_> = item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();

    let idents: Vec<&Ident> = f.params.iter().map(|p| &p.ident).collect();
    let keys: Vec<String> = idents.iter().map(|i| i.unraw().to_string()).collect();
    let tys: Vec<&Type> = f.params.iter().map(|p| &p.ty).collect();

    let ok_ty = match &f.ok_type {
        Some(t) => t.to_token_stream(),
        None => quote!(()),
    };
    let ret_span = match &item.sig.output {
        ReturnType::Default => item.sig.ident.span(),
        ReturnType::Type(_, _) => f
            .ok_type
            .as_ref()
            .map_or(item.sig.output.span(), Spanned::span),
    };
    // Every use of a parameter or result type goes through
    // `&&&Serde::<T>::NEW` (see `__private`): the checks below are the one
    // error for a type that is not serde, spanned at the type, and the other
    // uses then compile against stand-ins instead of adding errors.
    let serde_traits = quote! {
        #[allow(unused_imports)]
        use #p::{IsSerde as _, NotSerde as _, SerializeOnly as _};
    };
    let serde_of =
        |ty: &dyn ToTokens, span: Span| quote_spanned! {span=> (&&&#p::Serde::<#ty>::NEW) };
    let check_result = {
        let s = serde_of(&ok_ty, ret_span);
        quote_spanned! {ret_span=> #s.check_result(); }
    };
    let check_args = f.params.iter().map(|prm| {
        let ty = &prm.ty;
        let s = serde_of(ty, ty.span());
        quote_spanned! {ty.span()=> #s.check_arg(); }
    });

    let store = o.store_result;
    let output_fn = if f.returns_result {
        quote!(result_output)
    } else {
        quote!(value_output)
    };
    let ctx_arg = if f.takes_context {
        quote!(__ctx,)
    } else {
        quote!()
    };
    let ctx_unused = if f.takes_context {
        quote!()
    } else {
        quote!(let _ = __ctx;)
    };

    // One call per argument, spanned at its type.
    let write_args = f.params.iter().zip(&keys).map(|(prm, key)| {
        let (ident, ty) = (&prm.ident, &prm.ty);
        let s = serde_of(ty, ty.span());
        quote_spanned! {ty.span()=> let __w = #s.write_arg(__w, #key, &#ident); }
    });
    let read_args = f.params.iter().zip(&keys).map(|(prm, key)| {
        let ty = &prm.ty;
        let s = serde_of(ty, ty.span());
        quote_spanned! {ty.span()=> #s.read_arg(&mut __r, #key)?, }
    });
    let result_serde = serde_of(&ok_ty, ret_span);
    let new_submit = quote_spanned! {ret_span=> #result_serde.submit };
    let send = quote_spanned! {ret_span=>
        #result_serde.send(Self::submit(#(#idents),*)).await
    };
    let output = quote_spanned! {ret_span=> #result_serde.#output_fn };

    let priority = match o.priority {
        Priority::High => quote!(High),
        Priority::Normal => quote!(Normal),
        Priority::Low => quote!(Low),
    };
    let retries = o.retries;
    let backoff = match o.backoff {
        None => quote!(#p::Backoff::DEFAULT),
        Some((base, cap)) => quote!(#p::Backoff {
            base: #p::Duration::from_millis(#base),
            cap: #p::Duration::from_millis(#cap),
        }),
    };
    let timeout = match o.timeout_ms {
        None => quote!(::core::option::Option::None),
        Some(ms) => quote!(::core::option::Option::Some(#p::Duration::from_millis(#ms))),
    };
    let max_lost = match o.max_lost {
        None => quote!(::core::option::Option::None),
        Some(n) => quote!(::core::option::Option::Some(#n)),
    };
    let route = &o.route;
    let schedule = match &o.schedule {
        None => quote!(::core::option::Option::None),
        Some(s) => {
            let (cron, written, tz) = (&s.cron, &s.written, &s.tz);
            let missed = match s.missed {
                Missed::Skip => quote!(#p::Missed::Skip),
                Missed::Latest => quote!(#p::Missed::Latest),
                Missed::All(n) => quote!(#p::Missed::All(#n)),
            };
            quote!(::core::option::Option::Some(#p::ScheduleDef {
                cron: #cron,
                written: #written,
                tz: #tz,
                missed: #missed,
            }))
        }
    };
    let location = format!("::{fn_name_str} (");

    let tuple_ty = quote!((#(#tys,)*));
    let struct_doc = format!(
        "The `{wire_name}` task, generated by `#[bananas::{}]` from the function \
         `{fn_name_str}`.\n\nCall `{fn_name_str}::delay(…)` to run it on a worker, \
         `{fn_name_str}::submit(…)` for per-call options, and the function \
         `{fn_name_str}(…)` to run the body directly.",
        if o.schedule.is_some() {
            "periodic"
        } else {
            "task"
        },
    );

    quote! {
        #item

        #(#cfgs)*
        #[allow(non_camel_case_types)]
        #[doc = #struct_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)]
        #vis struct #fn_name {}

        #(#cfgs)*
        #[allow(dead_code, clippy::too_many_arguments, clippy::needless_lifetimes)]
        impl #fn_name {
            /// The task's name on the wire.
            #vis const NAME: &'static str = #wire_name;

            #[doc(hidden)]
            #vis const __DEF: #p::TaskDef = #p::TaskDef {
                name: #wire_name,
                route: #route,
                priority: #p::Priority::#priority,
                retries: #retries,
                backoff: #backoff,
                timeout: #timeout,
                max_lost: #max_lost,
                store_result: #store,
                params: &[#(#keys),*],
                handler: Self::__handler,
                check_args: Self::__check_args,
                location: ::core::concat!(::core::module_path!(), #location, ::core::file!(), ":", ::core::line!(), ")"),
                schedule: #schedule,
            };

            /// The task's definition, as registered with the worker.
            #vis fn def() -> &'static #p::TaskDef {
                &Self::__DEF
            }

            /// Prepares a job with these arguments; set per-call options on
            /// the returned builder, then `.send().await` it.
            #vis fn submit(#(#idents: #tys),*) -> #p::Submit<#ok_ty> {
                #serde_traits
                let __w = #p::args_writer();
                #(#write_args)*
                #new_submit(Self::def(), __w.finish())
            }

            /// Submits a job with these arguments and the task's default options.
            #vis async fn delay(#(#idents: #tys),*)
                -> ::core::result::Result<#p::JobHandle<#ok_ty>, #p::Error>
            {
                #serde_traits
                #send
            }

            #[doc(hidden)]
            #vis fn __decode(__args: &#p::RawValue)
                -> ::core::result::Result<#tuple_ty, #p::String>
            {
                #serde_traits
                let mut __r = #p::args_reader(__args, Self::__DEF.params)?;
                ::core::result::Result::Ok((#(#read_args)*))
            }

            #[doc(hidden)]
            #vis fn __check_args(__args: &#p::RawValue) -> ::core::result::Result<(), #p::String> {
                Self::__decode(__args).map(|_| ())
            }

            #[doc(hidden)]
            #vis fn __handler(
                __ctx: #p::Context,
                __args: #p::Box<#p::RawValue>,
            ) -> #p::BoxFuture<#p::HandlerResult> {
                #ctx_unused
                let (#(#idents,)*) = match Self::__decode(&__args) {
                    ::core::result::Result::Ok(__a) => __a,
                    ::core::result::Result::Err(__e) => return #p::bad_args(__e),
                };
                #p::Box::pin(async move {
                    #serde_traits
                    #output(#fn_name(#ctx_arg #(#idents),*).await, #store)
                })
            }
        }

        #(#cfgs)*
        const _: () = {
            // Type-checked, never called.
            let _ = || {
                #serde_traits
                #(#check_args)*
                #check_result
            };
        };

        #(#cfgs)*
        #p::inventory::submit! { #fn_name::__DEF }
    }
}
