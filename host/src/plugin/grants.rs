//! Capability grants: what a pipeline lets an operator's plugin touch,
//! checked against what the plugin declares in its manifest and against the
//! host functions its code imports, before it ever runs.

use eddy_abi::names;

use super::PluginModule;
use crate::config::Grants;

/// Checks a plugin against its grants; names the first capability it lacks.
pub fn check(module: &PluginModule, grants: &Grants) -> Result<(), String> {
    let manifest = module.manifest();
    let plugin = &manifest.name;
    let capabilities = &manifest.capabilities;
    if let Some(state) = capabilities
        .state
        .iter()
        .find(|s| !grants.state.contains(s))
    {
        return Err(format!(
            "plugin `{plugin}` declares state `{state}`, which is not granted (add it to grants.state)"
        ));
    }
    if let Some(output) = capabilities
        .side_outputs
        .iter()
        .find(|o| !grants.side_outputs.contains(o))
    {
        return Err(format!(
            "plugin `{plugin}` declares side output `{output}`, which is not granted (add it to grants.side_outputs)"
        ));
    }
    if capabilities.timers && !grants.timers {
        return Err(format!(
            "plugin `{plugin}` declares timers, which are not granted (set grants.timers = true)"
        ));
    }
    if capabilities.twin && !grants.twin {
        return Err(format!(
            "plugin `{plugin}` declares twin (params set from the device twin), which is not granted (set grants.twin = true)"
        ));
    }
    // What the code can call, whatever the manifest says.
    for import in module.imports() {
        let needs = match import.as_str() {
            names::STATE_GET | names::STATE_PUT | names::STATE_DELETE
                if grants.state.is_empty() =>
            {
                "keyed state (grants.state)"
            }
            names::TIMER_SET | names::TIMER_DELETE if !grants.timers => {
                "timers (grants.timers = true)"
            }
            _ => continue,
        };
        return Err(format!(
            "plugin `{plugin}` imports `{import}`, which needs {needs}, not granted"
        ));
    }
    Ok(())
}
