/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-config.c - libFuzzer target: the INI configuration loader */
#include "config.h"
#include "fuzz-common.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

/*
 * Loads the input as a configuration file and runs the cross-field checks.
 * A load that fails must say why.
 */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;

  if (!moat_config_load_data (config, (const char *) data, size, "fuzz.ini",
                              &error))
    {
      g_assert_nonnull (error);
      return 0;
    }
  g_assert_null (error);
  if (!moat_config_validate (config, &error))
    g_assert_nonnull (error);
  return 0;
}
