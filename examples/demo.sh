#!/bin/sh
echo "hwfota: the FOTA flow demo is not there yet (see issue 4)."
