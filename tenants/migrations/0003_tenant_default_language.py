from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_portal_texts_domain_verification"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="default_language",
            field=models.CharField(blank=True, default="", max_length=8),
        ),
    ]
