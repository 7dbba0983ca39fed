/* SPDX-License-Identifier: GPL-2.0-or-later */
/* audit.h - the audit log: one JSON object per line, flushed per event */
#pragma once

#include <glib.h>

typedef struct MoatAudit MoatAudit;
typedef struct MoatAuditEvent MoatAuditEvent;

MoatAudit *moat_audit_open (const char *path, GError **error);
void moat_audit_close (MoatAudit *audit);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatAudit, moat_audit_close)

MoatAuditEvent *moat_audit_event_new (const char *event);
void moat_audit_event_add_string (MoatAuditEvent *event, const char *key,
                                  const char *value);
void moat_audit_event_add_int (MoatAuditEvent *event, const char *key,
                               gint64 value);
void moat_audit_event_add_bool (MoatAuditEvent *event, const char *key,
                                gboolean value);
void moat_audit_event_free (MoatAuditEvent *event);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatAuditEvent, moat_audit_event_free)

void moat_audit_emit (MoatAudit *audit, MoatAuditEvent *event);
