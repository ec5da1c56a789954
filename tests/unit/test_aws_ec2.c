/*
 * test_aws_ec2.c - EC2 forms and answers without a network: the recorded
 * responses in tests/fixtures/aws/ec2, paging tokens, error bodies, and
 * the RunInstances form (tags on instance and volume, user-data base64,
 * launch template by id or name, ClientToken).
 */
#include "fixture.h"

#include "../../workers/aws/aws.h"

static void
test_parse_describe(void)
{
	struct buf b = BUF_INIT, next = BUF_INIT;
	struct ec2_instances l = {0};

	if (fixture_read("aws/ec2/describe-instances.multi.xml", &b) == -1)
		return;
	CHECK(ec2_parse_instances(b.data, b.len, &l, &next) == 0);
	CHECK(l.n == 2);
	CHECK_STR(l.v[0].id, "i-4382922a");
	CHECK_STR(l.v[0].state, "stopped");
	CHECK_STR(l.v[0].type, "m1.small");
	CHECK_STR(l.v[1].id, "i-8474834a");
	CHECK_STR(l.v[0].owner_id, "123456789098");
	CHECK_STR(buf_str(&next), "");
	ec2_instances_free(&l);
	buf_reset(&b);
	if (fixture_read("aws/ec2/run-instances.xml", &b) == -1)
		return;
	CHECK(ec2_parse_instances(b.data, b.len, &l, NULL) == 0);
	CHECK(l.n == 1);
	CHECK_STR(l.v[0].id, "i-2baa5550");
	CHECK_STR(l.v[0].state, "pending");
	CHECK(l.v[0].owner_id[0] != '\0');
	ec2_instances_free(&l);
	buf_free(&b);
	buf_free(&next);
}

static void
test_parse_tags_and_paging(void)
{
	static const char xml[] =
	        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/"
	        "doc/2016-11-15/\"><reservationSet><item><instancesSet><item>"
	        "<instanceId>i-1</instanceId><instanceState><code>16</code>"
	        "<name>running</name></instanceState><tagSet>"
	        "<item><key>ephemera:instance</key><value>eph</value></item>"
	        "<item><key>ephemera:env</key><value>o-r-7</value></item>"
	        "</tagSet></item></instancesSet></item></reservationSet>"
	        "<nextToken>page2==</nextToken></DescribeInstancesResponse>";
	struct ec2_instances l = {0};
	struct buf next = BUF_INIT;

	CHECK(ec2_parse_instances(xml, strlen(xml), &l, &next) == 0);
	CHECK(l.n == 1);
	CHECK_STR(l.v[0].tag_instance, "eph");
	CHECK_STR(l.v[0].tag_env, "o-r-7");
	CHECK_STR(buf_str(&next), "page2==");
	CHECK(ec2_parse_instances("<not xml", 8, &l, &next) == -1);
	ec2_instances_free(&l);
	buf_free(&next);
}

static void
test_parse_errors(void)
{
	static const struct {
		const char *file;
		long status;
		const char *code;
		enum aws_error_kind kind;
	} cases[] = {
	        {"aws/ec2/error-request-limit-exceeded.xml", 503,
	         "RequestLimitExceeded", AWS_THROTTLED},
	        {"aws/ec2/error-insufficient-instance-capacity.xml", 500,
	         "InsufficientInstanceCapacity", AWS_CAPACITY},
	        {"aws/ec2/error-invalid-instance-id-not-found.xml", 400,
	         "InvalidInstanceID.NotFound", AWS_NOT_FOUND},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;
		struct aws_error e = {0};

		if (fixture_read(cases[i].file, &b) == -1)
			continue;
		ec2_parse_error(b.data, b.len, cases[i].status, &e);
		CHECK_STR(e.code, cases[i].code);
		CHECK(e.kind == cases[i].kind);
		CHECK(e.message[0] != '\0');
		buf_free(&b);
	}
	{
		static const char no_code[] =
		        "<Response><Errors><Error><Message>"
		        "m</Message></Error></Errors>"
		        "</Response>";
		struct aws_error e = {0};

		ec2_parse_error(no_code, strlen(no_code), 503, &e);
		CHECK_STR(e.code, "HTTP503");
		CHECK(e.kind == AWS_THROTTLED);
	}
}

static void
test_launch_form(void)
{
	static const struct aws_tag tags[] = {{"ephemera:instance", "eph"},
	                                      {"ephemera:env", "o-r-7"}};
	struct ec2_launch l = {.launch_template = "lt-0abc",
	                       .instance_type = "t3.small",
	                       .subnet_id = "subnet-1",
	                       .security_group_ids = "sg-1,sg-2",
	                       .instance_profile = "ephemera-preview",
	                       .user_data = "#!/bin/sh\necho hi\n",
	                       .tags = tags,
	                       .ntags = 2,
	                       .client_token = "eph-7-3"};
	struct buf b = BUF_INIT;

	CHECK(ec2_launch_form(&l, &b) == 0);
	CHECK(strstr(b.data, "Action=RunInstances&Version=2016-11-15&"));
	CHECK(strstr(b.data, "LaunchTemplate.LaunchTemplateId=lt-0abc"));
	CHECK(strstr(b.data, "ImageId") == NULL);
	CHECK(strstr(b.data, "SecurityGroupId.1=sg-1&SecurityGroupId.2=sg-2"));
	CHECK(strstr(b.data, "IamInstanceProfile.Name=ephemera-preview"));
	CHECK(strstr(b.data, "UserData=IyEvYmluL3NoCmVjaG8gaGkK"));
	CHECK(strstr(b.data, "TagSpecification.1.ResourceType=instance&"
	                     "TagSpecification.1.Tag.1.Key=ephemera%3Ainstance"
	                     "&TagSpecification.1.Tag.1.Value=eph"));
	CHECK(strstr(b.data, "TagSpecification.2.ResourceType=volume"));
	CHECK(strstr(b.data, "TagSpecification.2.Tag.2.Value=o-r-7"));
	CHECK(strstr(b.data, "ClientToken=eph-7-3"));
	buf_reset(&b);
	l.launch_template = "";
	CHECK(ec2_launch_form(&l, &b) == -1);
	l.launch_template = "previews";
	l.ami = "ami-1";
	buf_reset(&b);
	CHECK(ec2_launch_form(&l, &b) == 0);
	CHECK(strstr(b.data, "LaunchTemplate.LaunchTemplateName=previews"));
	CHECK(strstr(b.data, "ImageId=ami-1"));
	buf_free(&b);
}

/* DescribeVolumes' answer, in the shape of the EC2 API reference's
 * example (volumeSet/item/volumeId), paged by nextToken. */
static void
test_parse_volumes(void)
{
	static const char xml[] =
	        "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/"
	        "doc/2016-11-15/\"><requestId>59dbff89-35bd-4eac-99ed-"
	        "be587EXAMPLE</requestId><volumeSet><item><volumeId>vol-1a2b"
	        "</volumeId><size>8</size><status>in-use</status>"
	        "<attachmentSet><item><volumeId>vol-1a2b</volumeId>"
	        "<instanceId>i-1</instanceId></item></attachmentSet></item>"
	        "<item><volumeId>vol-3c4d</volumeId><status>deleting"
	        "</status></item><item><size>1</size></item></volumeSet>"
	        "<nextToken>v2==</nextToken></DescribeVolumesResponse>";
	struct ec2_volumes v = {0};
	struct buf next = BUF_INIT;

	CHECK(ec2_parse_volumes(xml, strlen(xml), &v, &next) == 0);
	/* The attachment's volumeId is not a second volume; an item with
	 * no id is skipped. */
	CHECK(v.n == 2);
	CHECK_STR(v.id[0], "vol-1a2b");
	CHECK_STR(v.id[1], "vol-3c4d");
	CHECK_STR(buf_str(&next), "v2==");
	/* Pages append. */
	CHECK(ec2_parse_volumes(xml, strlen(xml), &v, NULL) == 0);
	CHECK(v.n == 4);
	ec2_volumes_free(&v);
	CHECK(ec2_parse_volumes("not xml", 7, &v, &next) == -1);
	CHECK(v.n == 0);
	ec2_volumes_free(NULL);
	buf_free(&next);
}

UNIT_MAIN(TEST(test_parse_describe), TEST(test_parse_tags_and_paging),
          TEST(test_parse_errors), TEST(test_launch_form),
          TEST(test_parse_volumes))
