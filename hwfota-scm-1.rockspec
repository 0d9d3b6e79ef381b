-- LuaRocks build of hwfota: `luarocks make` in the source tree.
rockspec_format = "3.0"
package = "hwfota"
version = "scm-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "FOTA firmware updates of Huawei MU509/MU609 modules over AT commands",
   detailed = [[
hwfota drives the FOTA AT commands of Huawei MU509/MU609 class cellular
modules (^FOTACFG, ^FOTAMODE, ^FOTADET, ^FOTADL, ^FOTADLQ, ^FWUP, ^FOTASTATE)
from a C core with an event-driven AT engine, exposed to Lua 5.4 so that
integrators write their upgrade policies in Lua.
]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   LIBSERIALPORT = { header = "libserialport.h", library = "serialport" },
}
build = {
   type = "builtin",
   modules = {
      ["hwfota.core"] = {
         sources = {
            "csrc/hf_error.c", "csrc/transport.c", "csrc/path_watch.c",
            "csrc/at_tokenizer.c", "csrc/at_final.c", "csrc/at_engine.c", "csrc/io_pump.c",
            "csrc/fota_parse.c", "csrc/fota_cmds.c", "csrc/fota_fsm.c", "csrc/fota_journal.c",
            "csrc/lua_util.c", "csrc/lua_port.c", "csrc/lua_fota.c", "csrc/lua_cmds.c",
            "csrc/lua_core.c", "csrc/lua_watch.c", "csrc/lua_pump.c",
         },
         defines = { "_DEFAULT_SOURCE", "_GNU_SOURCE" },
         incdirs = { "csrc", "$(LIBSERIALPORT_INCDIR)" },
         libdirs = { "$(LIBSERIALPORT_LIBDIR)" },
         libraries = { "serialport" },
      },
      ["hwfota"] = "lua/hwfota/init.lua",
      ["hwfota.loop"] = "lua/hwfota/loop.lua",
      ["hwfota.session"] = "lua/hwfota/session.lua",
      ["hwfota.driver"] = "lua/hwfota/driver.lua",
      ["hwfota.options"] = "lua/hwfota/options.lua",
      ["hwfota.run"] = "lua/hwfota/run.lua",
      ["hwfota.policy"] = "lua/hwfota/policy.lua",
      ["hwfota.identity"] = "lua/hwfota/identity.lua",
      ["hwfota.reconnect"] = "lua/hwfota/reconnect.lua",
      ["hwfota.pathwatch"] = "lua/hwfota/pathwatch.lua",
      ["hwfota.cli"] = "lua/hwfota/cli.lua",
      ["hwfota.argv"] = "lua/hwfota/argv.lua",
      ["hwfota.json"] = "lua/hwfota/json.lua",
      ["hwfota.fleet.proto"] = "lua/hwfota/fleet/proto.lua",
      ["hwfota.fleet.membus"] = "lua/hwfota/fleet/membus.lua",
      ["hwfota.fleet.vclock"] = "lua/hwfota/fleet/vclock.lua",
      ["hwfota.fleet.controller"] = "lua/hwfota/fleet/controller.lua",
      ["hwfota.fleet.cli"] = "lua/hwfota/fleet/cli.lua",
      ["hwfota.fleet.sim"] = "lua/hwfota/fleet/sim.lua",
      ["hwfota.trigger.once"] = "lua/hwfota/trigger/once.lua",
      ["hwfota.trigger.socket"] = "lua/hwfota/trigger/socket.lua",
      ["hwfota.trigger.sms"] = "lua/hwfota/trigger/sms.lua",
      ["hwfota.fleet.mqtt_bus"] = "lua/hwfota/fleet/mqtt_bus.lua",
      ["hwfota.fleet.agent"] = "lua/hwfota/fleet/agent.lua",
      ["hwfota.fleet.agent_cli"] = "lua/hwfota/fleet/agent_cli.lua",
   },
   install = {
      bin = { hwfota = "lua/bin/hwfota" },
   },
}
