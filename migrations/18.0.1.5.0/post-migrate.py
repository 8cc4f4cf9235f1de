# The emails of the addon name the seller of the invoice (the reseller for a
# reseller's customer, else the company) in their subject, body and sender
# (issue 12). Their templates are loaded once (noupdate): those whose subject
# and sender are still as the addon made them get the seller in place of the
# company, in every language; a template an administrator changed is kept.
OLD_SENDER = (
    "{{ (object.invoice_user_id.email_formatted or object.company_id.email_formatted"
    " or user.email_formatted) }}"
)
NEW_SENDER = "{{ (object._billing_email_from() or user.email_formatted) }}"
OLD_SUBJECTS = {
    "mail_template_wallet_credited": (
        "{{ object.company_id.name }}: your wallet was credited"
    ),
    "mail_template_topup_expired": (
        "{{ object.company_id.name }}: top-up {{ object.name or '' }} cancelled"
    ),
    "mail_template_payment_reminder": (
        "{{ object.company_id.name }}: payment reminder for invoice "
        "{{ object.name or '' }}"
    ),
}


def migrate(cr, version):
    for name, subject in OLD_SUBJECTS.items():
        cr.execute(
            """
            UPDATE mail_template t
               SET subject = replace(t.subject::text, 'object.company_id.name',
                                     'object._billing_seller_name()')::jsonb,
                   body_html = replace(t.body_html::text, 'object.company_id.name',
                                       'object._billing_seller_name()')::jsonb,
                   email_from = %(new_sender)s
              FROM ir_model_data d
             WHERE d.module = 'prepaid_postpaid_billing' AND d.name = %(name)s
               AND d.model = 'mail.template' AND t.id = d.res_id
               AND t.subject->>'en_US' = %(subject)s
               AND t.email_from = %(old_sender)s
            """,
            {
                "name": name,
                "subject": subject,
                "old_sender": OLD_SENDER,
                "new_sender": NEW_SENDER,
            },
        )
