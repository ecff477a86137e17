//! The attribute's arguments: the capabilities a plugin declares.

use eddy_abi::Capabilities;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, ExprLit, Lit, Meta, Token};

/// Parsed `state = [...], side_outputs = [...], timers, twin,
/// validate = path, state_version = N`.
pub(crate) struct Args {
    pub(crate) capabilities: Capabilities,
    /// The declared layout version of the plugin's state; 0 when not given.
    pub(crate) state_version: u32,
    /// Whether any argument was given (the `on_timer` macro takes none).
    pub(crate) any: bool,
    /// `validate = path`: a function checking the params after they are
    /// read, at start and whenever the twin changes them.
    pub(crate) validate: Option<syn::Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        let mut capabilities = Capabilities::default();
        let mut state_version = 0;
        let mut validate = None;
        for meta in &metas {
            let name = meta.path().get_ident().map(|i| i.to_string());
            match (name.as_deref(), meta) {
                (Some("timers"), Meta::Path(_)) => capabilities.timers = true,
                (Some("twin"), Meta::Path(_)) => capabilities.twin = true,
                (Some("validate"), Meta::NameValue(nv)) => match &nv.value {
                    Expr::Path(p) => validate = Some(p.path.clone()),
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "expected a function's name, like `validate = check_params`",
                        ));
                    }
                },
                (Some("state"), Meta::NameValue(nv)) => capabilities.state = strings(&nv.value)?,
                (Some("side_outputs"), Meta::NameValue(nv)) => {
                    capabilities.side_outputs = strings(&nv.value)?
                }
                (Some("state_version"), Meta::NameValue(nv)) => match &nv.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(n), ..
                    }) => state_version = n.base10_parse()?,
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "expected a whole number, like `state_version = 2`",
                        ));
                    }
                },
                _ => {
                    return Err(syn::Error::new_spanned(
                        meta,
                        "unknown argument: expected `state = [\"name\", ...]`, \
                         `side_outputs = [\"name\", ...]`, `timers`, `twin`, \
                         `validate = function` or `state_version = N`",
                    ));
                }
            }
        }
        Ok(Args {
            capabilities,
            state_version,
            any: !metas.is_empty(),
            validate,
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
