def migrate(cr, version):
    """Usage left billed by no invoice before deleted and cancelled invoices put
    their charges back to pending: pending again, billed by the next recurring
    invoice or with Create Invoice."""
    # Their invoice was deleted: the line link was set to NULL.
    cr.execute(
        """
        UPDATE billing_charge
           SET state = 'pending'
         WHERE state = 'invoiced' AND invoice_line_id IS NULL
        """
    )
    # Their invoice was cancelled: pending, the line remembered so that resetting
    # the invoice to draft bills them there again.
    cr.execute(
        """
        UPDATE billing_charge c
           SET state = 'pending', cancelled_line_id = c.invoice_line_id,
               invoice_line_id = NULL
          FROM account_move_line l
          JOIN account_move m ON m.id = l.move_id
         WHERE c.invoice_line_id = l.id AND c.state = 'invoiced'
           AND m.state = 'cancel'
        """
    )
    cr.execute(
        """
        UPDATE account_move_line l
           SET billing_released_count = c.count
          FROM (SELECT cancelled_line_id, COUNT(*) AS count
                  FROM billing_charge
                 WHERE cancelled_line_id IS NOT NULL
              GROUP BY cancelled_line_id) AS c
         WHERE l.id = c.cancelled_line_id
        """
    )
