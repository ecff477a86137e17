//! The attribute's arguments: the capabilities a plugin declares.

use eddy_abi::Capabilities;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, ExprLit, Lit, Meta, Token};

/// Parsed `state = [...], side_outputs = [...], timers`.
pub(crate) struct Args {
    pub(crate) capabilities: Capabilities,
    /// Whether any argument was given (the `on_timer` macro takes none).
    pub(crate) any: bool,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        let mut capabilities = Capabilities::default();
        for meta in &metas {
            let name = meta.path().get_ident().map(|i| i.to_string());
            match (name.as_deref(), meta) {
                (Some("timers"), Meta::Path(_)) => capabilities.timers = true,
                (Some("state"), Meta::NameValue(nv)) => capabilities.state = strings(&nv.value)?,
                (Some("side_outputs"), Meta::NameValue(nv)) => {
                    capabilities.side_outputs = strings(&nv.value)?
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        meta,
                        "unknown argument: expected `state = [\"name\", ...]`, \
                         `side_outputs = [\"name\", ...]` or `timers`",
                    ));
                }
            }
        }
        Ok(Args {
            capabilities,
            any: !metas.is_empty(),
        })
    }
}

/// `["a", "b"]` as strings.
fn strings(expr: &Expr) -> syn::Result<Vec<String>> {
    let Expr::Array(ExprArray { elems, .. }) = expr else {
        return Err(syn::Error::new_spanned(
            expr,
            "expected a list of names, like [\"alerts\"]",
        ));
    };
    elems
        .iter()
        .map(|e| match e {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(s.value()),
            other => Err(syn::Error::new_spanned(other, "expected a string literal")),
        })
        .collect()
}
