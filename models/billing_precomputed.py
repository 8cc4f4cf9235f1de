"""The precomputed fields the recurring run's precomputed invoices give
(billing_recurring_fast.py), put in the create values of account.move and
account.move.line by their ``_add_precomputed_values``. A module of its own,
without models, so that account_move.py and account_move_line.py import it
before the billing models are loaded."""

# The key of the values of an invoice and of its lines that carries what the
# precomputed create gives their precomputed fields (see
# ``billing_add_precomputed``).
PRECOMPUTED_KEY = "__billing_precomputed__"
# The key of the values of a line that carries what the precomputed create
# gives computed fields that are not precomputed (price_subtotal...): used by
# the set-based insert of the lines (billing_recurring_fast.py), dropped by
# the ORM's create, which computes them.
COMPUTED_KEY = "__billing_computed__"
# account.move.line's _compute_sequence of the lines the invoice makes.
DYNAMIC_LINE_SEQUENCES = {"tax": 10000, "payment_term": 12000}


def billing_add_precomputed(model, vals_list, add_precomputed):
    """``_add_precomputed_values`` of ``model`` for ``vals_list`` with the
    values of precomputed fields given under ``PRECOMPUTED_KEY`` put in first,
    as precomputed (neither inverted nor computed again, as if computed here):
    the readonly ones ``_prepare_create_values`` drops from the values, the
    others as the precomputation would give them. Records whose precomputed
    fields are all given are then not made new records to compute them (which,
    for an invoice, makes new records of its lines too); ``add_precomputed``
    (the ORM's) completes the others."""
    given_fields = []
    for vals in vals_list:
        vals.pop(COMPUTED_KEY, None)
        given = vals.pop(PRECOMPUTED_KEY, None)
        if given:
            fields_ = {model._fields[name] for name in given}
            if not all(field.precompute for field in fields_):
                raise ValueError(f"Not precomputed fields of {model._name}: {given}")
            vals.update(given)
            given_fields.append((vals, fields_))
    result = add_precomputed(vals_list)
    for vals, fields_ in given_fields:
        vals.setdefault("__precomputed__", set()).update(fields_)
    return result
