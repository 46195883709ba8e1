//! Finding a Lua state's darksidesync: the DSS API 2v0 table the module
//! publishes in `registry["DSS.DarkSideSync"]`, loading the module with
//! `require "darksidesync"` first when this state has not loaded it yet.

use mlua::{Function, Lua, Value};

use crate::ffi::{self, Api};

/// The published API of `lua`'s darksidesync, loading the module if need
/// be; a Lua error naming the library `name` when it cannot be found.
pub(crate) fn find_api(lua: &Lua, name: &str) -> mlua::Result<&'static Api> {
    if !published(lua)? {
        // Lua convention: a module requires its own dependencies.
        let loaded = match lua.globals().get::<Value>("require")? {
            Value::Function(require) => load(&require),
            _ => Err("there is no global require".to_string()),
        };
        if let Err(why) = loaded {
            return Err(mlua::Error::runtime(format!(
                "{name}: cannot load darksidesync (require \"darksidesync\" failed): {why}"
            )));
        }
        if !published(lua)? {
            return Err(mlua::Error::runtime(format!(
                "{name}: require \"darksidesync\" did not publish \"{}\" in the registry",
                ffi::REGISTRY_NAME
            )));
        }
    }
    let table: mlua::Table = lua.named_registry_value(ffi::REGISTRY_NAME)?;
    let ptr = match table.raw_get::<Value>(ffi::API_KEY)? {
        Value::LightUserData(p) if !p.0.is_null() => p.0 as *const Api,
        _ => {
            return Err(mlua::Error::runtime(format!(
                "{name}: the loaded darksidesync does not publish \"{}\" (too old?)",
                ffi::API_KEY
            )))
        }
    };
    // SAFETY: the registry entry is the module's static `dss_api_2v0_t`,
    // valid for the process (header contract: the module pins itself).
    // Only `size` is read before it is known that the rest is there.
    // Fields after `waits` are optional: checked where used.
    let api: &'static Api = unsafe { &*ptr };
    if api.size < Api::SIZE_WITH_WAITS {
        return Err(mlua::Error::runtime(format!(
            "{name}: the loaded darksidesync publishes a smaller DSS API 2v0 ({} bytes, need {})",
            api.size,
            Api::SIZE_WITH_WAITS
        )));
    }
    Ok(api)
}

/// True when the module's registry table is there.
fn published(lua: &Lua) -> mlua::Result<bool> {
    Ok(matches!(
        lua.named_registry_value::<Value>(ffi::REGISTRY_NAME)?,
        Value::Table(_)
    ))
}

/// `require "darksidesync"`, with the error's first line as the reason.
fn load(require: &Function) -> Result<(), String> {
    require
        .call::<Value>("darksidesync")
        .map(drop)
        .map_err(|e| {
            let text = crate::LuaError::from_mlua(&e).message().to_string();
            text.trim_start_matches("runtime error: ").to_string()
        })
}
