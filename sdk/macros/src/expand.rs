//! The expansion of the three attributes.

use eddy_abi::{ABI_VERSION, MANIFEST_SECTION, Manifest, OperatorKind};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, ItemFn, LitByteStr};

use crate::args::Args;

/// Which attribute is being expanded.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    Process,
    Window,
    OnTimer,
}

impl Entry {
    fn attribute(self) -> &'static str {
        match self {
            Entry::Process => "process",
            Entry::Window => "window",
            Entry::OnTimer => "on_timer",
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Entry::Process => "(record: &RecordRef<'_>, ctx: &mut Context<P>) -> Result<()>",
            Entry::Window => "(window: &WindowRef<'_>, ctx: &mut Context<P>) -> Result<()>",
            Entry::OnTimer => "(timer: &TimerRef<'_>, ctx: &mut Context<P>) -> Result<()>",
        }
    }
}

/// Expands one attribute. On a mistake, returns the error as a
/// `compile_error!` next to the item as written, so that only the mistake is
/// reported, not everything that would follow from the item vanishing.
pub(crate) fn expand(entry: Entry, args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(entry, args, item.clone()) {
        Ok(tokens) => tokens,
        Err(e) => {
            let error = e.to_compile_error();
            quote!(#error #item)
        }
    }
}

fn try_expand(entry: Entry, args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let attribute = entry.attribute();
    let function = match syn::parse2::<Item>(item)? {
        Item::Fn(f) => f,
        other => {
            return Err(syn::Error::new(
                other.span(),
                format!("#[eddy_sdk::{attribute}] goes on a function"),
            ));
        }
    };
    check_signature(entry, &function)?;
    if matches!(entry, Entry::OnTimer) && args.any {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[eddy_sdk::on_timer] takes no arguments; declare `timers` on the process or window function",
        ));
    }

    let name = &function.sig.ident;
    let module = format_ident!("__eddy_{}_{}", attribute, name);
    let span = function.sig.span();
    let (assert, init, export, kind) = match entry {
        Entry::Process => (
            quote!(assert_process),
            Some(quote!(init_process)),
            quote!(process),
            Some(OperatorKind::Process),
        ),
        Entry::Window => (
            quote!(assert_window),
            Some(quote!(init_window)),
            quote!(window),
            Some(OperatorKind::Window),
        ),
        Entry::OnTimer => (quote!(assert_on_timer), None, quote!(on_timer), None),
    };
    // A one-word path names a function beside the operator's.
    let validate = args.validate.as_ref().map(|path| match path.get_ident() {
        Some(ident) => quote!(super::#ident),
        None => quote!(#path),
    });
    let init = init.map(|init| {
        let validate = match &validate {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn init() -> i32 {
                ::eddy_sdk::__private::#init(super::#name, #validate)
            }
        }
    });
    let manifest = kind.map(|kind| manifest(kind, args)).transpose()?;
    let check = quote_spanned! {span=>
        const _: fn() = || ::eddy_sdk::__private::#assert(&#name);
    };
    Ok(quote! {
        #function

        #check

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod #module {
            #init

            /// # Safety
            ///
            /// Called by the host with a range it wrote.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn #export(ptr: *const u8, len: usize) -> i32 {
                // SAFETY: the host wrote `ptr..ptr + len` for this call.
                unsafe { ::eddy_sdk::__private::#export(ptr, len, super::#name) }
            }

            #manifest
        }
    })
}

/// Expands `#[eddy_sdk::aggregate]` on an `impl Aggregate for T`.
pub(crate) fn expand_aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand_aggregate(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(e) => {
            let error = e.to_compile_error();
            quote!(#error #item)
        }
    }
}

fn try_expand_aggregate(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let implementation = match syn::parse2::<Item>(item)? {
        Item::Impl(i) if i.trait_.is_some() => i,
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[eddy_sdk::aggregate] goes on an `impl Aggregate for T` block",
            ));
        }
    };
    let ty = &implementation.self_ty;
    let manifest = manifest(OperatorKind::Aggregate, args)?;
    Ok(quote! {
        #implementation

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __eddy_aggregate {
            #[unsafe(no_mangle)]
            pub extern "C" fn init() -> i32 {
                ::eddy_sdk::__private::init_aggregate::<super::#ty>()
            }

            /// # Safety
            ///
            /// Called by the host with a range it wrote.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn aggregate(ptr: *const u8, len: usize) -> i32 {
                // SAFETY: the host wrote `ptr..ptr + len` for this call.
                unsafe { ::eddy_sdk::__private::aggregate::<super::#ty>(ptr, len) }
            }

            /// # Safety
            ///
            /// Called by the host with a range it wrote.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn result(ptr: *const u8, len: usize) -> i32 {
                // SAFETY: the host wrote `ptr..ptr + len` for this call.
                unsafe { ::eddy_sdk::__private::result::<super::#ty>(ptr, len) }
            }

            /// # Safety
            ///
            /// Called by the host with a range it wrote.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn fold_result(ptr: *const u8, len: usize) -> i32 {
                // SAFETY: the host wrote `ptr..ptr + len` for this call.
                unsafe { ::eddy_sdk::__private::fold_result::<super::#ty>(ptr, len) }
            }

            #manifest
        }
    })
}

/// Rejects what can never be an entry point, with a message saying what would be.
fn check_signature(entry: Entry, function: &ItemFn) -> syn::Result<()> {
    let attribute = entry.attribute();
    let sig = &function.sig;
    let wrong = |span: Span, what: &str| {
        syn::Error::new(
            span,
            format!(
                "#[eddy_sdk::{attribute}] function {what}; expected fn {}{}",
                sig.ident,
                entry.signature()
            ),
        )
    };
    if let Some(a) = &sig.asyncness {
        return Err(wrong(a.span(), "cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(wrong(sig.generics.span(), "cannot be generic"));
    }
    if sig.inputs.len() != 2 {
        return Err(wrong(sig.inputs.span(), "must take two arguments"));
    }
    if let Some(syn::FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(wrong(r.span(), "must be a free function, not a method"));
    }
    Ok(())
}

/// The manifest's custom section, as a `#[used]` static.
fn manifest(kind: OperatorKind, args: Args) -> syn::Result<TokenStream> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            syn::Error::new(
                Span::call_site(),
                format!("{name} is not set: build the plugin with cargo"),
            )
        })
    };
    let manifest = Manifest {
        name: var("CARGO_PKG_NAME")?,
        version: var("CARGO_PKG_VERSION")?,
        abi_version: ABI_VERSION,
        kind,
        state_version: args.state_version,
        capabilities: args.capabilities,
    };
    let json = serde_json::to_vec(&manifest)
        .map_err(|e| syn::Error::new(Span::call_site(), e.to_string()))?;
    let len = json.len();
    let bytes = LitByteStr::new(&json, Span::call_site());
    Ok(quote! {
        #[unsafe(link_section = #MANIFEST_SECTION)]
        #[used]
        static MANIFEST: [u8; #len] = *#bytes;
    })
}
