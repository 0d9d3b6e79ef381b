-- End to end against hwfota-sim (issue 12.9): the host is killed (SIGKILL) right
-- after the journal record fwup_sent=1 and before AT^FWUP reaches the wire. The
-- module never tried: it still holds the verified image in 40. The next host waits
-- boot_settle with the module still in 40 on the old firmware, says that AT^FWUP may
-- not have reached the module, records the one retry (fwup_retry=1) and applies the
-- image: upgraded, one AT^FWUP in the module's log, no second download. A host
-- killed again right after that record gets no third chance: the image is discarded
-- and the run says why.
local sim = require "support.sim"
local killable = require "support.killable"

describe("flow: host killed between the fwup_sent record and AT^FWUP", function()
  -- (--closed-port drop is not run: there a killed host's exclusive flag stays set on
  -- the pty and the next open is EBUSY, issue 12.8, another item)
  do
    it("the next run applies the image once", function()
      local s = sim.start{"--time-scale", "0.03"}
      finally(function() s:stop() end)
      local journal = s.dir .. "/journal"
      local jtext = killable.kill_at(s, journal, "fwup_record", {"settle=0.5"})
      assert.matches("\nfwup_sent=1\n", jtext, 1, true)
      assert.is_nil(jtext:find("fwup_retry", 1, true))
      assert.equal(0, s:count("AT^FWUP"), "killed before the write")
      local out = killable.finish(s, journal, {"settle=0.5"})
      assert.matches("\nreport upgraded ", "\n" .. out, 1, true)
      assert.equal(1, s:count("AT^FWUP"), out)
      assert.equal(1, s:count("AT^FOTADL=1"), "the verified image is not downloaded again")
      assert.equal(0, s:count("AT^FOTADL=0"), "nor discarded")
      assert.same({11, 12, 30, 40, 50, 90}, s:states())
      assert.is_nil(sim.read_file(journal), "journal removed after success")
    end)
  end

  it("killed again after the retry's record: no third chance, discarded, said so", function()
    local s = sim.start{"--time-scale", "0.03"}
    finally(function() s:stop() end)
    local journal = s.dir .. "/journal"
    killable.kill_at(s, journal, "fwup_record", {"settle=0.5"})
    local jtext = killable.kill_at(s, journal, "fwup_record", {"settle=0.5"})
    assert.matches("\nfwup_retry=1\n", jtext, 1, true)
    assert.equal(0, s:count("AT^FWUP"))
    local out = killable.finish(s, journal, {"settle=0.5"})
    assert.matches("\nreport failed EUPGRADE AT^FWUP may not have reached the module", "\n" .. out,
                   1, true)
    assert.equal(0, s:count("AT^FWUP"))
    assert.equal(1, s:count("AT^FOTADL=0"), "the image is not left in 40")
    assert.is_nil(sim.read_file(journal), "the image is gone: nothing left to resume")
  end)
end)
